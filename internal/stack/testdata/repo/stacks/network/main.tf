variable "cidr" {
  type = string
}

variable "account" {
  type = string
}

variable "secret" {
  type      = string
  sensitive = true
}

variable "peer_version" {
  type    = string
  default = "1"
}

resource "terraform_data" "hub" {
  input = {
    cidr    = var.cidr
    account = var.account
    secret  = var.secret
  }
}

resource "terraform_data" "peering" {
  triggers_replace = var.peer_version
  input            = "peering"
}

resource "terraform_data" "old" {
  input = "to be removed"
}

output "hub_id" {
  value = terraform_data.hub.id
}

output "cidr" {
  value = var.cidr
}

output "key" {
  value     = var.secret
  sensitive = true
}
