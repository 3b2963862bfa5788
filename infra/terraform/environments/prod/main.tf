# ChatSDK production. Two stages in one configuration:
#   stage 1 (default): everything in AWS; runs from anywhere with AWS credentials.
#   stage 2 (-var stage2_enabled=true): Kafka topics and PostgreSQL roles/databases; the providers must reach MSK
#   and RDS in the private subnets, so it runs from inside the VPC (see modules/kafka-topics and database-roles).

locals {
  environment = "prod"
}

provider "aws" {
  region = var.aws_region

  default_tags {
    tags = merge(var.tags, {
      Project     = "chatsdk"
      Environment = local.environment
      ManagedBy   = "terraform"
    })
  }
}

# Both providers connect lazily, on the first resource that needs them, but they are configured on every plan
# and fail on unknown settings (e.g. the bootstrap brokers before MSK exists). With stage2_enabled = false they get
# known placeholders and never dial.
locals {
  stage2_placeholder_host = "stage2-disabled.invalid"
}

provider "kafka" {
  bootstrap_servers = var.stage2_enabled ? split(",", module.kafka.bootstrap_brokers_sasl_scram) : ["${local.stage2_placeholder_host}:9096"]
  sasl_username     = module.kafka.scram_username
  sasl_password     = var.stage2_enabled ? module.kafka.scram_password : ""
  sasl_mechanism    = "scram-sha512"
  tls_enabled       = true
  skip_tls_verify   = false
}

data "aws_secretsmanager_secret_version" "rds_master" {
  count = var.stage2_enabled ? 1 : 0

  secret_id = module.database.master_user_secret_arn
}

provider "postgresql" {
  host            = var.stage2_enabled ? coalesce(var.stage2_database_host, module.database.address) : local.stage2_placeholder_host
  port            = var.stage2_database_port
  database        = "postgres"
  username        = try(jsondecode(data.aws_secretsmanager_secret_version.rds_master[0].secret_string).username, "")
  password        = try(jsondecode(data.aws_secretsmanager_secret_version.rds_master[0].secret_string).password, "")
  sslmode         = "require"
  superuser       = false # the RDS master user is not a PostgreSQL superuser
  connect_timeout = 15
}

# ---- stage 1 -------------------------------------------------------------------------------------------------

module "logging" {
  source = "../../modules/logging"

  environment = local.environment
}

module "secrets" {
  source = "../../modules/secrets"

  environment = local.environment
}

module "network" {
  source = "../../modules/network"

  environment        = local.environment
  availability_zones = var.availability_zones
  vpc_cidr           = var.vpc_cidr
  nat_gateway_per_az = var.nat_gateway_per_az
  logs_kms_key_arn   = module.logging.kms_key_arn
}

module "cluster" {
  source = "../../modules/cluster"

  environment                  = local.environment
  kubernetes_version           = var.kubernetes_version
  vpc_id                       = module.network.vpc_id
  private_subnet_ids           = module.network.private_subnet_ids
  endpoint_public_access       = var.cluster_endpoint_public_access
  public_access_cidrs          = var.cluster_public_access_cidrs
  cluster_admin_principal_arns = var.cluster_admin_principal_arns
  on_demand_instance_types     = var.on_demand_instance_types
  on_demand_min_size           = var.on_demand_min_size
  on_demand_desired_size       = var.on_demand_desired_size
  on_demand_max_size           = var.on_demand_max_size
  spot_enabled                 = var.spot_enabled
  spot_instance_types          = var.spot_instance_types
  spot_min_size                = var.spot_min_size
  spot_desired_size            = var.spot_desired_size
  spot_max_size                = var.spot_max_size
  logs_kms_key_arn             = module.logging.kms_key_arn
}

module "kafka" {
  source = "../../modules/kafka"

  environment                = local.environment
  broker_instance_type       = var.kafka_broker_instance_type
  broker_volume_size_gib     = var.kafka_broker_volume_size_gib
  broker_volume_max_size_gib = var.kafka_broker_volume_max_size_gib
  enhanced_monitoring        = "PER_TOPIC_PER_PARTITION" # consumer lag per partition for the projector alerts
  vpc_id                     = module.network.vpc_id
  private_subnet_ids         = module.network.private_subnet_ids
  client_security_group_id   = module.cluster.cluster_security_group_id
  secrets_kms_key_arn        = module.secrets.kms_key_arn
  logs_kms_key_arn           = module.logging.kms_key_arn
  tiered_storage             = var.kafka_tiered_storage
}

module "database" {
  source = "../../modules/database"

  environment               = local.environment
  instance_class            = var.database_instance_class
  allocated_storage_gib     = var.database_allocated_storage_gib
  max_allocated_storage_gib = var.database_max_allocated_storage_gib
  backup_retention_days     = var.database_backup_retention_days
  vpc_id                    = module.network.vpc_id
  private_subnet_ids        = module.network.private_subnet_ids
  client_security_group_id  = module.cluster.cluster_security_group_id
  secrets_kms_key_arn       = module.secrets.kms_key_arn
  logs_kms_key_arn          = module.logging.kms_key_arn
}

module "uploads" {
  source = "../../modules/uploads"

  environment                        = local.environment
  allowed_origins                    = var.allowed_origins
  versioning_enabled                 = var.uploads_versioning_enabled
  noncurrent_version_expiration_days = var.uploads_noncurrent_version_expiration_days
}

module "container_registry" {
  source = "../../modules/container-registry"

  environment          = local.environment
  repository_namespace = var.ecr_repository_namespace
}

module "service_roles" {
  source = "../../modules/service-roles"

  environment         = local.environment
  oidc_provider_arn   = module.cluster.oidc_provider_arn
  oidc_issuer         = module.cluster.oidc_issuer
  vpc_id              = module.network.vpc_id
  uploads_bucket_arn  = module.uploads.bucket_arn
  uploads_kms_key_arn = module.uploads.kms_key_arn
  secret_arns = [
    module.kafka.scram_secret_arn,
    module.database.app_secret_arn,
    module.secrets.admin_token_secret_arn,
  ]
  secrets_kms_key_arn = module.secrets.kms_key_arn
  hosted_zone_id      = var.hosted_zone_id
  cluster_name        = module.cluster.cluster_name
}

module "edge" {
  source = "../../modules/edge"

  environment              = local.environment
  public_host              = var.public_host
  hosted_zone_id           = var.hosted_zone_id
  rate_limit_per_5_minutes = var.waf_rate_limit_per_5_minutes
  logs_kms_key_arn         = module.logging.kms_key_arn
}

# ---- stage 2 -------------------------------------------------------------------------------------------------

module "kafka_topics" {
  source = "../../modules/kafka-topics"
  count  = var.stage2_enabled ? 1 : 0

  channel_events_partitions = var.channel_events_partitions
  ephemeral_partitions      = var.ephemeral_partitions
  tiered_storage            = var.kafka_tiered_storage

  depends_on = [module.kafka]
}

module "database_roles" {
  source = "../../modules/database-roles"
  count  = var.stage2_enabled ? 1 : 0

  chatsdk_password  = module.database.chatsdk_password
  apicurio_password = module.database.apicurio_password

  depends_on = [module.database]
}
