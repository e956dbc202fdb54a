variable "env" {
  type = string
}

variable "hub" {
  type = string
}

variable "note" {
  type = string
}

variable "key" {
  type      = string
  sensitive = true
}

module "naming" {
  source = "../../modules/naming"
  env    = var.env
}

resource "terraform_data" "subnet" {
  input = {
    name = module.naming.name
    hub  = var.hub
    note = var.note
    key  = var.key
  }
}

output "subnet_id" {
  value = terraform_data.subnet.id
}
