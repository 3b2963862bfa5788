output "cluster_arn" {
  description = "ARN of the MSK cluster."
  value       = aws_msk_cluster.this.arn
}

output "bootstrap_brokers_sasl_scram" {
  description = "Comma-separated SASL/SCRAM-over-TLS bootstrap brokers (port 9096)."
  value       = aws_msk_cluster.this.bootstrap_brokers_sasl_scram
}

output "security_group_id" {
  description = "Security group of the brokers."
  value       = aws_security_group.msk.id
}

output "scram_secret_name" {
  description = "Name of the SCRAM secret (AmazonMSK_chatsdk-<env>)."
  value       = aws_secretsmanager_secret.scram.name
}

output "scram_secret_arn" {
  description = "ARN of the SCRAM secret."
  value       = aws_secretsmanager_secret.scram.arn
}

output "scram_username" {
  description = "SCRAM username (for the kafka provider of stage 2)."
  value       = local.scram_user
}

output "scram_password" {
  description = "SCRAM password (for the kafka provider of stage 2)."
  value       = random_password.scram.result
  sensitive   = true
}
