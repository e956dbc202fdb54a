# An environment's spoke: its own /16 of the landing zone's address space,
# peered with the hub, a DNS subdomain of the hub's zone, and its logs
# routed to the management zone's sink.

variable "environment" {
  type = string
}

variable "zone" {
  type = string
}

variable "project" {
  type = string
}

variable "region" {
  type = string
}

variable "address_space" {
  type        = string
  description = "The landing zone's range (connectivity's output); the spoke takes /16 number spoke of it."
}

variable "spoke" {
  type = number
  validation {
    condition     = var.spoke >= 1 && var.spoke <= 7
    error_message = "spoke is 1 to 7: 0 is the hub's, and the space holds 8 /16s."
  }
}

variable "hub_network" {
  type = string
}

variable "dns_zone" {
  type = string
}

variable "log_sink" {
  type = string
}

variable "owner" {
  type = string
}

variable "cost_center" {
  type = string
}

locals {
  name = "vpc-${var.environment}"
  cidr = cidrsubnet(var.address_space, 3, var.spoke)
  tags = {
    owner       = var.owner
    cost-center = var.cost_center
    environment = var.environment
    zone        = var.zone
  }
}

resource "terraform_data" "spoke_network" {
  input = {
    name     = local.name
    project  = var.project
    location = var.region
    cidr     = local.cidr
    tags     = local.tags
  }
}

resource "terraform_data" "subnet" {
  for_each = { apps = 0, data = 1 }
  input = {
    name     = "snet-${var.environment}-${each.key}"
    network  = terraform_data.spoke_network.output.name
    cidr     = cidrsubnet(local.cidr, 4, each.value)
    location = var.region
    tags     = local.tags
  }
}

resource "terraform_data" "peering" {
  input = {
    name     = "peer-hub-${var.environment}"
    from     = var.hub_network
    to       = terraform_data.spoke_network.output.name
    location = var.region
    tags     = local.tags
  }
}

resource "terraform_data" "dns" {
  input = {
    name     = "${var.environment}.${var.dns_zone}"
    zone     = var.dns_zone
    location = var.region
    tags     = local.tags
  }
}

resource "terraform_data" "log_route" {
  input = {
    name        = "logs-${var.environment}"
    destination = var.log_sink
    location    = var.region
    tags        = local.tags
  }
}

output "cidr" {
  value = local.cidr
}

output "network" {
  value = terraform_data.spoke_network.output.name
}

output "subnets" {
  value = { for k, s in terraform_data.subnet : k => s.output.cidr }
}

output "dns_name" {
  value = terraform_data.dns.output.name
}
