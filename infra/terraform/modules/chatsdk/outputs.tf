output "k8s_values" {
  description = "Input of infra/k8s/render (deploy time adds image_tag); keys fixed by the infra contract."
  value = {
    environment               = var.environment
    aws_region                = var.aws_region
    image_registry            = module.container_registry.image_registry
    public_host               = var.public_host
    certificate_arn           = module.edge.certificate_arn
    allowed_origins           = var.allowed_origins
    kafka_bootstrap_brokers   = module.kafka.bootstrap_brokers_sasl_scram
    channel_events_partitions = var.channel_events_partitions
    database_host             = module.database.address
    uploads_bucket            = module.uploads.bucket_name
    command_api_role_arn      = module.service_roles.command_api_role_arn
    query_api_role_arn        = module.service_roles.query_api_role_arn
    secrets_reader_role_arn   = module.service_roles.secrets_reader_role_arn
    kafka_secret_name         = module.kafka.scram_secret_name
    database_secret_name      = module.database.app_secret_name
    admin_token_secret_name   = module.secrets.admin_token_secret_name
    command_api_min_replicas  = var.command_api_min_replicas
    command_api_max_replicas  = var.command_api_max_replicas
    query_api_min_replicas    = var.query_api_min_replicas
    query_api_max_replicas    = var.query_api_max_replicas
    projector_replicas        = var.projector_replicas
    waf_acl_arn               = module.edge.waf_acl_arn
  }
}

# ---- for the environment's stage 2 (kafka and postgresql providers, kafka-topics, database-roles) -------------

output "kafka_bootstrap_brokers" {
  description = "Comma-separated SASL/SCRAM-over-TLS bootstrap brokers (port 9096)."
  value       = module.kafka.bootstrap_brokers_sasl_scram
}

output "kafka_scram_username" {
  description = "SCRAM username (kafka provider of stage 2)."
  value       = module.kafka.scram_username
}

output "kafka_scram_password" {
  description = "SCRAM password (kafka provider of stage 2)."
  value       = module.kafka.scram_password
  sensitive   = true
}

output "kafka_tiered_storage" {
  description = "Whether the MSK cluster has tiered storage (kafka-topics' tiered_storage must match)."
  value       = var.kafka_tiered_storage
}

output "database_address" {
  description = "Host name of the RDS instance."
  value       = module.database.address
}

output "database_port" {
  description = "PostgreSQL port."
  value       = module.database.port
}

output "rds_master_secret_arn" {
  description = "RDS-managed master user secret (stage 2 only; applications never use it)."
  value       = module.database.master_user_secret_arn
}

output "database_chatsdk_password" {
  description = "Password of the chatsdk role (database-roles of stage 2)."
  value       = module.database.chatsdk_password
  sensitive   = true
}

output "database_apicurio_password" {
  description = "Password of the apicurio role (database-roles of stage 2)."
  value       = module.database.apicurio_password
  sensitive   = true
}

# ---- for operators -------------------------------------------------------------------------------------------

output "vpc_id" {
  description = "VPC ID (aws-load-balancer-controller --aws-vpc-id: pods cannot read instance metadata)."
  value       = module.network.vpc_id
}

output "nat_public_ips" {
  description = "Egress IPs of the environment."
  value       = module.network.nat_public_ips
}

output "cluster_name" {
  description = "EKS cluster name (aws eks update-kubeconfig --name …)."
  value       = module.cluster.cluster_name
}

output "cluster_endpoint" {
  description = "Kubernetes API endpoint."
  value       = module.cluster.cluster_endpoint
}

output "aws_load_balancer_controller_role_arn" {
  description = "IRSA role for kube-system/aws-load-balancer-controller."
  value       = module.service_roles.aws_load_balancer_controller_role_arn
}

output "external_dns_role_arn" {
  description = "IRSA role ARN for external-dns (helm: serviceAccount.annotations)."
  value       = module.service_roles.external_dns_role_arn
}

output "cluster_autoscaler_role_arn" {
  description = "IRSA role ARN for cluster-autoscaler (helm: rbac.serviceAccount.annotations)."
  value       = module.service_roles.cluster_autoscaler_role_arn
}

output "ecr_repository_urls" {
  description = "ECR repository per service (CI pushes here)."
  value       = module.container_registry.repository_urls
}

output "uploads_access_log_bucket" {
  description = "Bucket with the uploads bucket's S3 server access logs."
  value       = module.uploads.access_log_bucket_name
}
