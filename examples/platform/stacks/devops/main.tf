# Where apps are built and their images kept.

variable "project" {
  type = string
}

variable "region" {
  type = string
}

variable "runner_identity" {
  type        = string
  description = "The workload identity the CI runners run as (identity's output)."
}

variable "runners" {
  type = number
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
    zone        = "devops"
  }
}

resource "terraform_data" "runner_pool" {
  input = {
    name            = "ci-runners"
    size            = var.runners
    machine_type    = "e2-standard-4"
    service_account = var.runner_identity
    location        = var.region
    tags            = local.tags
  }
}

resource "terraform_data" "registry" {
  input = {
    name     = "images"
    format   = "DOCKER"
    url      = "${var.region}-docker.pkg.dev/${var.project}/images"
    location = var.region
    tags     = local.tags
  }
}

output "registry_url" {
  value = terraform_data.registry.output.url
}
