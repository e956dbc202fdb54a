# One workload identity per team of teams.yaml: the service account its
# apps run as, in the identity zone's account.

variable "project" {
  type = string
}

variable "region" {
  type = string
}

variable "teams" {
  type = list(string)
}

variable "owner" {
  type = string
}

variable "cost_center" {
  type = string
}

resource "terraform_data" "workload_identity" {
  for_each = toset(var.teams)
  input = {
    account_id = "wi-${each.key}"
    email      = "wi-${each.key}@${var.project}.iam.gserviceaccount.com"
    location   = var.region
    tags = {
      owner       = var.owner
      cost-center = var.cost_center
      environment = "shared"
      team        = each.key
    }
  }
}

output "identities" {
  description = "The workload identity of each team, by team."
  value       = { for team, wi in terraform_data.workload_identity : team => wi.output.email }
}

output "ci_identity" {
  description = "The platform team's workload identity, which CI runs as."
  value       = terraform_data.workload_identity["platform"].output.email
}
