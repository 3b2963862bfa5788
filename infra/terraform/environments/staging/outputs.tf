output "k8s_values" {
  description = "Input of infra/k8s/render (deploy time adds image_tag); keys fixed by the infra contract."
  value       = module.chatsdk.k8s_values
}

output "vpc_id" {
  description = "VPC ID (aws-load-balancer-controller --aws-vpc-id: pods cannot read instance metadata)."
  value       = module.chatsdk.vpc_id
}

output "cluster_name" {
  description = "EKS cluster name (aws eks update-kubeconfig --name …)."
  value       = module.chatsdk.cluster_name
}

output "cluster_endpoint" {
  description = "Kubernetes API endpoint."
  value       = module.chatsdk.cluster_endpoint
}

output "aws_load_balancer_controller_role_arn" {
  description = "IRSA role for kube-system/aws-load-balancer-controller."
  value       = module.chatsdk.aws_load_balancer_controller_role_arn
}

output "ecr_repository_urls" {
  description = "ECR repository per service (CI pushes here)."
  value       = module.chatsdk.ecr_repository_urls
}

output "nat_public_ips" {
  description = "Egress IPs of the environment."
  value       = module.chatsdk.nat_public_ips
}

output "uploads_access_log_bucket" {
  description = "Bucket with the uploads bucket's S3 server access logs."
  value       = module.chatsdk.uploads_access_log_bucket
}

output "external_dns_role_arn" {
  description = "IRSA role ARN for external-dns (helm: serviceAccount.annotations)."
  value       = module.chatsdk.external_dns_role_arn
}

output "cluster_autoscaler_role_arn" {
  description = "IRSA role ARN for cluster-autoscaler (helm: rbac.serviceAccount.annotations)."
  value       = module.chatsdk.cluster_autoscaler_role_arn
}

# ---- read by stage 2 (stage2/, data "terraform_remote_state" "stage1"): keep the names ------------------------

output "kafka_bootstrap_brokers" {
  description = "Comma-separated SASL/SCRAM-over-TLS bootstrap brokers (port 9096)."
  value       = module.chatsdk.kafka_bootstrap_brokers
}

output "kafka_scram_username" {
  description = "SCRAM username of the stage-2 kafka provider."
  value       = module.chatsdk.kafka_scram_username
}

output "kafka_scram_password" {
  description = "SCRAM password of the stage-2 kafka provider."
  value       = module.chatsdk.kafka_scram_password
  sensitive   = true
}

output "kafka_tiered_storage" {
  description = "Whether the MSK cluster has tiered storage (the unlimited topics enable remote storage)."
  value       = module.chatsdk.kafka_tiered_storage
}

output "channel_events_partitions" {
  description = "Partitions of chatsdk.channel-events.v1 and its DLQ (also in k8s_values)."
  value       = var.channel_events_partitions
}

output "ephemeral_partitions" {
  description = "Partitions of chatsdk.ephemeral.v1."
  value       = var.ephemeral_partitions
}

output "database_address" {
  description = "Host name of the RDS instance."
  value       = module.chatsdk.database_address
}

output "database_port" {
  description = "PostgreSQL port."
  value       = module.chatsdk.database_port
}

output "rds_master_secret_arn" {
  description = "RDS-managed master user secret (stage 2 only; applications never use it)."
  value       = module.chatsdk.rds_master_secret_arn
}

output "database_chatsdk_password" {
  description = "Password of the chatsdk role (stage 2 creates the role)."
  value       = module.chatsdk.database_chatsdk_password
  sensitive   = true
}

output "database_apicurio_password" {
  description = "Password of the apicurio role (stage 2 creates the role)."
  value       = module.chatsdk.database_apicurio_password
  sensitive   = true
}
