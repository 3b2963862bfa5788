# STAGE 2 (environments/<env>/stage2, through modules/chatsdk-data). Applied from a network that reaches the
# brokers in the private subnets (a CI runner inside the VPC carrying the EKS cluster security group, e.g. a runner
# pod in the cluster); the brokers admit nobody else. Stage 1 (everything else) can run from anywhere.

locals {
  # RF 3 over 3 AZs with min.insync.replicas 2: acks=all survives one broker/AZ down without losing a write.
  replication_factor  = 3
  min_insync_replicas = "2"

  topics = {
    "chatsdk.channel-events.v1" = {
      partitions   = var.channel_events_partitions
      retention_ms = "-1" # the event store: never deleted
    }
    # Same partition count as the source topic so a DLQ record sits in the partition of its channel.
    "chatsdk.channel-events.v1.dlq" = {
      partitions   = var.channel_events_partitions
      retention_ms = "-1"
    }
    "chatsdk.ephemeral.v1" = {
      partitions   = var.ephemeral_partitions
      retention_ms = "3600000" # typing/presence: one hour, never projected
    }
  }

  # With tiered storage the unlimited topics keep local_retention_ms on the brokers and the rest in the tier.
  configs = { for name, topic in local.topics : name => merge(
    {
      "cleanup.policy"      = "delete"
      "retention.ms"        = topic.retention_ms
      "min.insync.replicas" = local.min_insync_replicas
    },
    var.tiered_storage && topic.retention_ms == "-1" ? {
      "remote.storage.enable" = "true"
      "local.retention.ms"    = tostring(var.local_retention_ms)
    } : {}
  ) }
}

# The event store and its DLQ: never destroyed by terraform (a replacement would delete the log), and their
# partition count is never changed in place (it would move channels to other partitions: a migration to a new
# topic, DESIGN.md). Changing channel_events_partitions after creation is therefore ignored here — and the
# services' readiness (kafka.partitions vs the topic's) reports the mismatch.
resource "kafka_topic" "event_log" {
  for_each = { for name, topic in local.topics : name => topic if topic.retention_ms == "-1" }

  name               = each.key
  partitions         = each.value.partitions
  replication_factor = local.replication_factor
  config             = local.configs[each.key]

  lifecycle {
    prevent_destroy = true
    ignore_changes  = [partitions, replication_factor]
  }
}

# Typing and presence only (an hour of retention): recreating it loses nothing that matters.
resource "kafka_topic" "ephemeral" {
  for_each = { for name, topic in local.topics : name => topic if topic.retention_ms != "-1" }

  name               = each.key
  partitions         = each.value.partitions
  replication_factor = local.replication_factor
  config             = local.configs[each.key]
}
