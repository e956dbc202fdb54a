# Where every zone's logs and the cloud bill land.

variable "project" {
  type = string
}

variable "region" {
  type = string
}

variable "retention_days" {
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
    zone        = "management"
  }
}

resource "terraform_data" "log_bucket" {
  input = {
    name           = "logs-${var.project}"
    location       = var.region
    retention_days = var.retention_days
    tags           = local.tags
  }
}

resource "terraform_data" "log_sink" {
  input = {
    name        = "org-audit-sink"
    destination = "logging.googleapis.com/projects/${var.project}/locations/${var.region}/buckets/${terraform_data.log_bucket.output.name}"
    filter      = "logName:\"cloudaudit.googleapis.com\""
    location    = var.region
    tags        = local.tags
  }
}

resource "terraform_data" "billing_export" {
  input = {
    dataset  = "billing_export"
    project  = var.project
    location = var.region
    format   = "FOCUS 1.0"
    tags     = local.tags
  }
}

output "log_sink" {
  value = terraform_data.log_sink.output.destination
}

output "billing_dataset" {
  value = "${var.project}.${terraform_data.billing_export.output.dataset}"
}
