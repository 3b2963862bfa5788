# ChatSDK stage 2 in one environment: the Kafka topics and the PostgreSQL roles and databases, on top of what
# stage 1 (modules/chatsdk) created. The environments' stage-2 roots (environments/<env>/stage2) call this module
# with the stage-1 outputs read from the stage-1 state and configure the kafka and postgresql providers, which
# must reach MSK and RDS in the private subnets. It configures no provider; the postgresql provider of the root
# takes the RDS master credentials from this module's outputs.

# The RDS-managed master user secret ({"username", "password"}); RDS rotates it, so it is read on every run.
data "aws_secretsmanager_secret_version" "rds_master" {
  secret_id = var.rds_master_secret_arn
}

locals {
  rds_master = jsondecode(data.aws_secretsmanager_secret_version.rds_master.secret_string)
}

module "kafka_topics" {
  source = "../kafka-topics"

  channel_events_partitions = var.channel_events_partitions
  ephemeral_partitions      = var.ephemeral_partitions
  tiered_storage            = var.kafka_tiered_storage
}

module "database_roles" {
  source = "../database-roles"

  chatsdk_password  = var.database_chatsdk_password
  apicurio_password = var.database_apicurio_password
}
