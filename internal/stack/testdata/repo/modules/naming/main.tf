variable "env" {
  type = string
}

output "name" {
  value = "subnet-${var.env}"
}
