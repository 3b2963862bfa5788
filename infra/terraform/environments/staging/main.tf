# ChatSDK staging: the production topology (3 AZs, Multi-AZ RDS, 3 brokers) at smaller sizes.
# Stage 1: everything in AWS (modules/chatsdk); runs from anywhere with AWS credentials.
# Stage 2 (Kafka topics, PostgreSQL roles and databases) is its own root with its own state, stage2/, which reads
# this root's outputs from its state and runs from inside the VPC (see README.md).
# What makes this staging is the sizes in module "chatsdk" below; prod calls the same module.

locals {
  environment = "staging"
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

module "chatsdk" {
  source = "../../modules/chatsdk"

  environment                  = local.environment
  aws_region                   = var.aws_region
  availability_zones           = var.availability_zones
  public_host                  = var.public_host
  hosted_zone_id               = var.hosted_zone_id
  allowed_origins              = var.allowed_origins
  cluster_admin_principal_arns = var.cluster_admin_principal_arns
  channel_events_partitions    = var.channel_events_partitions

  # Sizes: prod's topology at the smallest sizes that run it; prod's sizes follow docs/capacity.md.
  vpc_cidr                     = "10.10.0.0/16" # prod has 10.20.0.0/16
  nat_gateway_per_az           = false          # one shared NAT gateway: cheaper, an AZ outage may cut egress
  waf_rate_limit_per_5_minutes = 10000          # per IP; server-to-server calls (Basic auth) are not counted

  on_demand_instance_types = ["m6i.large"] # half of prod's m6i.xlarge; 1 per AZ (module default)
  spot_instance_types      = ["m6i.large", "m6a.large", "m5.large", "m5a.large"]
  spot_max_size            = 2 # per AZ

  kafka_broker_instance_type       = "kafka.t3.small" # smallest MSK broker
  kafka_broker_volume_size_gib     = 50               # per broker, initial; auto-scales up to the ceiling below
  kafka_broker_volume_max_size_gib = 500
  kafka_enhanced_monitoring        = "PER_BROKER" # cheapest enhanced level; per-partition lag is watched in prod
  kafka_tiered_storage             = false        # not available on kafka.t3 brokers

  database_instance_class            = "db.t4g.medium" # burstable; prod runs db.r6g.large
  database_allocated_storage_gib     = 50
  database_max_allocated_storage_gib = 200
  database_backup_retention_days     = 7 # the database module's minimum

  # Enough replicas to exercise the HPAs and a consumer group of more than one member.
  command_api_min_replicas = 2
  command_api_max_replicas = 4
  query_api_min_replicas   = 2
  query_api_max_replicas   = 4
  projector_replicas       = 2 # <= channel_events_partitions
}
