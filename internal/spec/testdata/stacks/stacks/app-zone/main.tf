resource "terraform_data" "subnet" {
  input = "${var.env}/${var.zone}/${var.hub}/${var.size}/${var.label}"
}

output "subnet_id" {
  value = terraform_data.subnet.id
}
