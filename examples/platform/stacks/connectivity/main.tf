# The hub of Alpenrose's landing zone. Every resource is terraform_data,
# so that the demo runs offline; its input is what a real hub would hold.

variable "project" {
  type        = string
  description = "The connectivity zone's cloud account."
}

variable "region" {
  type = string
}

variable "address_space" {
  type        = string
  description = "The landing zone's whole private range; the hub takes its first /16, each spoke another."
}

variable "dns_zone" {
  type = string
}

variable "owner" {
  type = string
}

variable "cost_center" {
  type = string
}

locals {
  tags = {
    owner       = var.owner
    cost-center = var.cost_center
    environment = "shared"
    zone        = "connectivity"
  }
  hub_cidr = cidrsubnet(var.address_space, 3, 0)
}

resource "terraform_data" "hub_network" {
  input = {
    name     = "vpc-hub-${var.region}"
    project  = var.project
    location = var.region
    cidr     = local.hub_cidr
    tags     = local.tags
  }
}

resource "terraform_data" "hub_firewall" {
  input = {
    name     = "fw-hub-deny-ingress"
    network  = terraform_data.hub_network.output.name
    location = var.region
    rules    = ["deny-all-ingress", "allow-iap-ssh", "allow-health-checks"]
    tags     = local.tags
  }
}

resource "terraform_data" "dns_zone" {
  input = {
    name       = replace(var.dns_zone, ".", "-")
    dns_name   = "${var.dns_zone}."
    visibility = "private"
    network    = terraform_data.hub_network.output.name
    location   = var.region
    tags       = local.tags
  }
}

output "address_space" {
  description = "The landing zone's private range: spokes are carved from it."
  value       = var.address_space
}

output "hub_cidr" {
  value = local.hub_cidr
}

output "hub_network" {
  value = terraform_data.hub_network.output.name
}

output "dns_zone" {
  value = var.dns_zone
}

output "region" {
  value = var.region
}
