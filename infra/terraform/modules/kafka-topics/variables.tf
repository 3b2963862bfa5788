variable "channel_events_partitions" {
  type        = number
  description = "Partitions of chatsdk.channel-events.v1 and its .dlq. Fixed for the topic's life: changing it moves channels to other partitions (key hash mod count) and breaks per-channel ordering and sync tokens; scaling past it is a migration to a new topic (v2)."
  default     = 12

  validation {
    condition     = var.channel_events_partitions >= 3
    error_message = "Use at least 3 partitions (one leader per broker)."
  }
}

variable "ephemeral_partitions" {
  type        = number
  description = "Partitions of chatsdk.ephemeral.v1. Fixed for the topic's life: changing it moves channels to other partitions; scaling past it is a migration to a new topic."
  default     = 12

  validation {
    condition     = var.ephemeral_partitions >= 3
    error_message = "Use at least 3 partitions (one leader per broker)."
  }
}

variable "tiered_storage" {
  type        = bool
  description = "The cluster has tiered storage: the unlimited topics enable remote storage (must match the kafka module's tiered_storage)."
  default     = false
}

variable "local_retention_ms" {
  type        = number
  description = "With tiered storage, how long the unlimited topics stay on the brokers' disks before living only in the tier."
  default     = 604800000 # 7 days
}
