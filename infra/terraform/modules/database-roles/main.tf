# STAGE 2. The postgresql provider is configured in the environment with the RDS master credentials read from the
# RDS-managed secret (data source), so this module only runs with -var stage2_enabled=true from a network that
# reaches the private subnets: a runner inside the VPC carrying the EKS cluster security group, or an SSM port
# forward through an EKS node (AWS-StartPortForwardingSessionToRemoteHost, then stage2_database_host=127.0.0.1).

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
}

resource "postgresql_database" "app" {
  for_each = local.owners

  name  = each.key
  owner = postgresql_role.app[each.key].name
}

# CONNECT stays granted to PUBLIC (the PostgreSQL default): revoking it would also lock out the RDS master user,
# which is not a superuser. Isolation comes from ownership: since PostgreSQL 15 nobody but the owner may create
# in a database's public schema, and neither role is granted anything on the other's objects.
