# STAGE 2 (environments/<env>/stage2, through modules/chatsdk-data). The postgresql provider is configured in the
# stage-2 root with the RDS master credentials read from the RDS-managed secret, so this module only runs from a
# network that reaches the private subnets: a runner inside the VPC carrying the EKS cluster security group, or an
# SSM port forward through an EKS node (AWS-StartPortForwardingSessionToRemoteHost, then
# stage2_database_host=127.0.0.1).

locals {
  # role name (also the name of the database it owns) => password; each application gets its own database.
  owners = {
    chatsdk  = var.chatsdk_password
    apicurio = var.apicurio_password
  }
}

resource "postgresql_role" "app" {
  for_each = local.owners

  name     = each.key
  login    = true
  password = each.value

  # The applications log in as these roles and they own the databases below: terraform never drops them.
  lifecycle {
    prevent_destroy = true
  }
}

resource "postgresql_database" "app" {
  for_each = local.owners

  name  = each.key
  owner = postgresql_role.app[each.key].name

  # The read model and the schema registry live here: terraform never drops them (remove them from the
  # state first, deliberately, if an environment is torn down).
  lifecycle {
    prevent_destroy = true
  }
}

# CONNECT stays granted to PUBLIC (the PostgreSQL default): revoking it would also lock out the RDS master user,
# which is not a superuser. Isolation comes from ownership: since PostgreSQL 15 nobody but the owner may create
# in a database's public schema, and neither role is granted anything on the other's objects.
