variable "name" {
  type = string
}

output "tags" {
  value = { name = var.name, managed_by = "socle" }
}
