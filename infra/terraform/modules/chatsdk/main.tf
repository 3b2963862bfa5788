# ChatSDK stage 1 in one environment: every AWS resource, wired together. The environments' stage-1 roots
# (environments/prod, environments/staging) call this module with their sizes; their stage-2 roots
# (environments/<env>/stage2, modules/chatsdk-data: topics, roles, databases) read its outputs from the stage-1
# state, and need network access to MSK and RDS.

locals {
  # One ECR namespace per environment unless told otherwise, so environments sharing an account do not collide
  # ("" is kept: bare repository names).
  ecr_repository_namespace = var.ecr_repository_namespace != null ? var.ecr_repository_namespace : "chatsdk-${var.environment}"
}

module "logging" {
  source = "../logging"

  environment = var.environment
}

module "secrets" {
  source = "../secrets"

  environment = var.environment
}

module "network" {
  source = "../network"

  environment        = var.environment
  availability_zones = var.availability_zones
  vpc_cidr           = var.vpc_cidr
  nat_gateway_per_az = var.nat_gateway_per_az
  logs_kms_key_arn   = module.logging.kms_key_arn
}

module "cluster" {
  source = "../cluster"

  environment                  = var.environment
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
  source = "../kafka"

  environment                = var.environment
  broker_instance_type       = var.kafka_broker_instance_type
  broker_volume_size_gib     = var.kafka_broker_volume_size_gib
  broker_volume_max_size_gib = var.kafka_broker_volume_max_size_gib
  enhanced_monitoring        = var.kafka_enhanced_monitoring
  vpc_id                     = module.network.vpc_id
  private_subnet_ids         = module.network.private_subnet_ids
  client_security_group_id   = module.cluster.cluster_security_group_id
  secrets_kms_key_arn        = module.secrets.kms_key_arn
  logs_kms_key_arn           = module.logging.kms_key_arn
  tiered_storage             = var.kafka_tiered_storage
}

module "database" {
  source = "../database"

  environment               = var.environment
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
  source = "../uploads"

  environment                        = var.environment
  allowed_origins                    = var.allowed_origins
  versioning_enabled                 = var.uploads_versioning_enabled
  noncurrent_version_expiration_days = var.uploads_noncurrent_version_expiration_days
}

module "container_registry" {
  source = "../container-registry"

  environment          = var.environment
  repository_namespace = local.ecr_repository_namespace
}

module "service_roles" {
  source = "../service-roles"

  environment         = var.environment
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
  source = "../edge"

  environment              = var.environment
  public_host              = var.public_host
  hosted_zone_id           = var.hosted_zone_id
  rate_limit_per_5_minutes = var.waf_rate_limit_per_5_minutes
  logs_kms_key_arn         = module.logging.kms_key_arn
}
