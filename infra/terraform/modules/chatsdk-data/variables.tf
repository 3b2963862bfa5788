# All of these come from the stage-1 state (outputs of environments/<env>, i.e. of modules/chatsdk).

variable "rds_master_secret_arn" {
  type        = string
  description = "ARN of the RDS-managed master user secret (stage-1 output rds_master_secret_arn); its credentials create the roles and databases."
}

variable "channel_events_partitions" {
  type        = number
  description = "Partitions of chatsdk.channel-events.v1 and its .dlq (stage-1 output; the same number is in k8s_values). Fixed for the topic's life."
}

variable "ephemeral_partitions" {
  type        = number
  description = "Partitions of chatsdk.ephemeral.v1 (stage-1 output). Fixed for the topic's life."
}

variable "kafka_tiered_storage" {
  type        = bool
  description = "Whether the MSK cluster has tiered storage (stage-1 output kafka_tiered_storage); the unlimited topics enable remote storage when it does."
}

variable "database_chatsdk_password" {
  type        = string
  description = "Password of the chatsdk role (stage-1 output; the value in chatsdk/<env>/database)."
  sensitive   = true
}

variable "database_apicurio_password" {
  type        = string
  description = "Password of the apicurio role (stage-1 output)."
  sensitive   = true
}
