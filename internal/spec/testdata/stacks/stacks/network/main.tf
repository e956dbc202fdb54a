variable "cidr" {
  type = string
}

variable "account" {
  type    = string
  default = ""
}

module "tags" {
  source = "../../modules/tags"
  name   = "hub"
}

resource "terraform_data" "hub" {
  input = {
    cidr = var.cidr
    tags = module.tags.tags
  }
}

output "hub_id" {
  value = terraform_data.hub.id
}

output "hub_cidr" {
  value = var.cidr
}

output "admin_password" {
  value     = "hunter2"
  sensitive = true
}
