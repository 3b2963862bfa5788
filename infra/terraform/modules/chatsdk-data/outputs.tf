# ---- for the stage-2 root's postgresql provider --------------------------------------------------------------

output "rds_master_username" {
  description = "RDS master user name (from the RDS-managed secret)."
  value       = local.rds_master.username
  sensitive   = true
}

output "rds_master_password" {
  description = "RDS master user password (from the RDS-managed secret)."
  value       = local.rds_master.password
  sensitive   = true
}

# ---- for operators -------------------------------------------------------------------------------------------

output "topic_names" {
  description = "Names of the ChatSDK topics."
  value       = module.kafka_topics.topic_names
}

output "databases" {
  description = "Database name => owner role."
  value       = module.database_roles.databases
}
