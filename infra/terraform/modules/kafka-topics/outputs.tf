output "topic_names" {
  description = "Names of the ChatSDK topics."
  value       = sort(concat(keys(kafka_topic.event_log), keys(kafka_topic.ephemeral)))
}
