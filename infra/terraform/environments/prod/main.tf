# ChatSDK production, stage 1: everything in AWS (modules/chatsdk); runs from anywhere with AWS credentials.
# Stage 2 (Kafka topics, PostgreSQL roles and databases) is its own root with its own state, stage2/, which reads
# this root's outputs from its state and runs from inside the VPC (see README.md).
# What makes this production is the sizes in module "chatsdk" below; staging calls the same module.

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

  # Sizes: the 10,000-user column of docs/capacity.md as the floor; HPAs and autoscalers grow towards 100,000.
  vpc_cidr                     = "10.20.0.0/16" # staging has 10.10.0.0/16
  nat_gateway_per_az           = true           # an AZ outage does not cut the other AZs' egress
  waf_rate_limit_per_5_minutes = 20000          # per IP; server-to-server calls (Basic auth) are not counted

  on_demand_instance_types = ["m6i.xlarge"] # capacity.md's node type; 1 per AZ (module default) is the 10k baseline
  spot_instance_types      = ["m6i.xlarge", "m6a.xlarge", "m5.xlarge", "m5a.xlarge"]
  spot_max_size            = 7 # per AZ: with 2 on-demand per AZ up to 27 nodes, above the 1M-user column's 22

  kafka_broker_instance_type       = "kafka.m7g.large" # enough up to 100,000 users (kafka.m7g.2xlarge at 1M, docs/capacity.md)
  kafka_broker_volume_size_gib     = 500               # per broker, initial; auto-scales up to the ceiling below
  kafka_broker_volume_max_size_gib = 4000
  kafka_enhanced_monitoring        = "PER_TOPIC_PER_PARTITION" # consumer lag per partition for the projector alerts
  kafka_tiered_storage             = true                      # the unlimited event log beyond a week lives in the tier

  database_instance_class            = "db.r6g.large" # 10,000 users; db.r6g.2xlarge at 100,000 (capacity.md)
  database_allocated_storage_gib     = 200
  database_max_allocated_storage_gib = 2000 # read model grows ~28-276 GB/month at 10k-100k users
  database_backup_retention_days     = 14

  # Pods at 10k / 100k / 1M users (capacity.md): command-api 2/4/31, query-api 2/3/23, projector 2/3/19.
  command_api_min_replicas = 3 # one per AZ
  command_api_max_replicas = 12
  query_api_min_replicas   = 3
  query_api_max_replicas   = 12
  projector_replicas       = 3 # <= channel_events_partitions
}
