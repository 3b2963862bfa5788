# ChatSDK staging, stage 2: Kafka topics, PostgreSQL roles and databases (modules/chatsdk-data), in a state of
# their own. Everything it needs comes from the stage-1 state (environments/staging, applied first). The kafka and
# postgresql providers must reach MSK (9096) and RDS (5432) in the private subnets, which admit only the EKS
# cluster security group: apply from a runner inside the VPC that carries it (e.g. a CI runner pod in the cluster),
# or, for PostgreSQL alone, through an SSM port forward (stage2_database_host/port). A stage-1 apply never touches
# what this root manages.

locals {
  environment = "staging"
  stage1      = data.terraform_remote_state.stage1.outputs
}

provider "aws" {
  region = var.aws_region
}

data "terraform_remote_state" "stage1" {
  backend = "s3"

  config = {
    bucket = var.state_bucket
    key    = var.stage1_state_key
    region = var.aws_region
  }

  lifecycle {
    postcondition {
      condition     = try(self.outputs.k8s_values.environment, "") == local.environment
      error_message = "The state at stage1_state_key is not the applied stage 1 of ${local.environment} (k8s_values.environment differs or is missing)."
    }
  }
}

# Both providers connect lazily, on the first resource that needs them; every setting is known at plan time
# (stage-1 outputs and the RDS master secret).
provider "kafka" {
  bootstrap_servers = split(",", local.stage1.kafka_bootstrap_brokers)
  sasl_username     = local.stage1.kafka_scram_username
  sasl_password     = local.stage1.kafka_scram_password
  sasl_mechanism    = "scram-sha512"
  tls_enabled       = true
  skip_tls_verify   = false
}

provider "postgresql" {
  host            = coalesce(var.stage2_database_host, local.stage1.database_address)
  port            = coalesce(var.stage2_database_port, local.stage1.database_port)
  database        = "postgres"
  username        = module.chatsdk_data.rds_master_username
  password        = module.chatsdk_data.rds_master_password
  sslmode         = "require"
  superuser       = false # the RDS master user is not a PostgreSQL superuser
  connect_timeout = 15
}

module "chatsdk_data" {
  source = "../../../modules/chatsdk-data"

  rds_master_secret_arn      = local.stage1.rds_master_secret_arn
  channel_events_partitions  = local.stage1.channel_events_partitions
  ephemeral_partitions       = local.stage1.ephemeral_partitions
  kafka_tiered_storage       = local.stage1.kafka_tiered_storage
  database_chatsdk_password  = local.stage1.database_chatsdk_password
  database_apicurio_password = local.stage1.database_apicurio_password
}
