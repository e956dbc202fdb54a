# A PostgreSQL database and the role that owns it, created on apply and
# dropped on destroy by psql. The SQL is idempotent: a database or role
# that exists already is kept (the role's password is set again), one that
# is gone already is not an error.
#
# The admin's password is never in the configuration nor the state: psql
# reads PGPASSWORD (or ~/.pgpass) from the environment socle runs in. The
# role's password is made here, once, and kept in the state, which socle
# seals.

variable "environment" {
  type = string
}

variable "host" {
  type = string
}

variable "port" {
  type = number
}

variable "admin_user" {
  type = string
}

variable "owner" {
  type = string
}

variable "cost_center" {
  type = string
}

variable "database" {
  type = string
  validation {
    condition     = can(regex("^[a-z_][a-z0-9_]{0,62}$", var.database))
    error_message = "database is a lowercase PostgreSQL identifier: letters, digits and _."
  }
}

variable "role" {
  type = string
  validation {
    condition     = can(regex("^[a-z_][a-z0-9_]{0,62}$", var.role))
    error_message = "role is a lowercase PostgreSQL identifier: letters, digits and _."
  }
}

# The role's password: the random id terraform gives this resource when it
# is created, kept as long as the resource is (uuid() would be made again
# at every plan, and each plan would differ).
resource "terraform_data" "password" {}

locals {
  password = replace(terraform_data.password.id, "-", "")
}

resource "terraform_data" "database" {
  # What the destroy provisioner needs, which may read only self.
  input = {
    host        = var.host
    port        = var.port
    admin_user  = var.admin_user
    database    = var.database
    role        = var.role
    environment = var.environment
    tags = {
      owner       = var.owner
      cost-center = var.cost_center
      environment = var.environment
    }
  }

  provisioner "local-exec" {
    interpreter = ["/bin/sh", "-c"]
    command     = <<-SH
      set -eu
      psql --no-psqlrc --quiet -v ON_ERROR_STOP=1 --dbname=postgres <<'SQL'
      \getenv role SOCLE_DB_ROLE
      \getenv database SOCLE_DB_NAME
      \getenv password SOCLE_DB_PASSWORD
      SELECT format('CREATE ROLE %I LOGIN', :'role') WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role') \gexec
      SELECT format('ALTER ROLE %I LOGIN PASSWORD %L', :'role', :'password') \gexec
      SELECT format('CREATE DATABASE %I OWNER %I', :'database', :'role') WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'database') \gexec
      SQL
    SH
    environment = {
      PGHOST            = var.host
      PGPORT            = var.port
      PGUSER            = var.admin_user
      SOCLE_DB_NAME     = var.database
      SOCLE_DB_ROLE     = var.role
      SOCLE_DB_PASSWORD = local.password
    }
  }

  provisioner "local-exec" {
    when        = destroy
    interpreter = ["/bin/sh", "-c"]
    command     = <<-SH
      set -eu
      psql --no-psqlrc --quiet -v ON_ERROR_STOP=1 --dbname=postgres <<'SQL'
      \getenv role SOCLE_DB_ROLE
      \getenv database SOCLE_DB_NAME
      SELECT format('DROP DATABASE IF EXISTS %I WITH (FORCE)', :'database') \gexec
      SELECT format('DROP ROLE IF EXISTS %I', :'role') \gexec
      SQL
    SH
    environment = {
      PGHOST        = self.input.host
      PGPORT        = self.input.port
      PGUSER        = self.input.admin_user
      SOCLE_DB_NAME = self.input.database
      SOCLE_DB_ROLE = self.input.role
    }
  }
}

output "host" {
  value = var.host
}

output "port" {
  value = var.port
}

output "name" {
  value = terraform_data.database.output.database
}

output "username" {
  value = terraform_data.database.output.role
}

output "password" {
  value     = local.password
  sensitive = true
}
