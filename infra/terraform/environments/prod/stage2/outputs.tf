output "kafka_topics" {
  description = "The ChatSDK topics."
  value       = module.chatsdk_data.topic_names
}

output "databases" {
  description = "Database name => owner role."
  value       = module.chatsdk_data.databases
}
