output "address" {
  description = "Host name of the RDS instance."
  value       = aws_db_instance.this.address
}

output "port" {
  description = "PostgreSQL port."
  value       = aws_db_instance.this.port
}

output "instance_identifier" {
  description = "RDS instance identifier."
  value       = aws_db_instance.this.identifier
}

output "master_user_secret_arn" {
  description = "ARN of the RDS-managed master user secret (read by stage 2 only)."
  value       = aws_db_instance.this.master_user_secret[0].secret_arn
}

output "app_secret_name" {
  description = "Name of the application roles secret (chatsdk/<env>/database)."
  value       = aws_secretsmanager_secret.app.name
}

output "app_secret_arn" {
  description = "ARN of the application roles secret."
  value       = aws_secretsmanager_secret.app.arn
}

output "chatsdk_password" {
  description = "Password of the chatsdk role (for database-roles)."
  value       = random_password.chatsdk.result
  sensitive   = true
}

output "apicurio_password" {
  description = "Password of the apicurio role (for database-roles)."
  value       = random_password.apicurio.result
  sensitive   = true
}

output "security_group_id" {
  description = "Security group of the RDS instance."
  value       = aws_security_group.rds.id
}
