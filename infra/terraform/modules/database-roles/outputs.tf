output "databases" {
  description = "Database name => owner role."
  value       = { for name, database in postgresql_database.app : name => database.owner }
}
