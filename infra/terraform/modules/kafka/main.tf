locals {
  name           = "chatsdk-${var.environment}"
  scram_user     = "chatsdk"
  sasl_scram_tls = 9096
}

module "kms" {
  source = "../kms-key"

  alias       = "${local.name}-msk"
  description = "${local.name} MSK encryption at rest"
}

# ---- network access ------------------------------------------------------------------------------------------

# No egress rules: brokers only answer connections. Terraform removes AWS's default allow-all egress rule.
resource "aws_security_group" "msk" {
  name        = "${local.name}-msk"
  description = "MSK brokers of ${local.name}: SASL/SCRAM over TLS from the EKS nodes/pods only"
  vpc_id      = var.vpc_id

  tags = { Name = "${local.name}-msk" }
}

resource "aws_vpc_security_group_ingress_rule" "sasl_scram_from_eks" {
  security_group_id            = aws_security_group.msk.id
  description                  = "Kafka SASL/SCRAM over TLS from EKS nodes/pods"
  ip_protocol                  = "tcp"
  from_port                    = local.sasl_scram_tls
  to_port                      = local.sasl_scram_tls
  referenced_security_group_id = var.client_security_group_id
}

# Prometheus open monitoring (JMX exporter 11001, node exporter 11002) scraped from inside the cluster.
resource "aws_vpc_security_group_ingress_rule" "prometheus_from_eks" {
  security_group_id            = aws_security_group.msk.id
  description                  = "Prometheus JMX and node exporters from EKS nodes/pods"
  ip_protocol                  = "tcp"
  from_port                    = 11001
  to_port                      = 11002
  referenced_security_group_id = var.client_security_group_id
}

# ---- broker configuration ------------------------------------------------------------------------------------

resource "aws_msk_configuration" "this" {
  # The version is part of the name: a new kafka_versions forces a replacement, created before the old one goes.
  name           = "${local.name}-${replace(var.kafka_version, ".", "-")}"
  kafka_versions = [var.kafka_version]
  description    = "ChatSDK durability settings: RF 3, min.insync.replicas 2, no unclean election, no implicit topics"

  # Topics are created by the kafka-topics module only; an auto-created topic would get the wrong partition count
  # and a typo would silently create a new event stream.
  server_properties = <<-EOT
    auto.create.topics.enable=false
    default.replication.factor=3
    min.insync.replicas=2
    unclean.leader.election.enable=false
  EOT

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_cloudwatch_log_group" "brokers" {
  name              = "/aws/msk/${local.name}/brokers"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.logs_kms_key_arn
}

resource "aws_msk_cluster" "this" {
  cluster_name           = local.name
  kafka_version          = var.kafka_version
  number_of_broker_nodes = var.broker_count
  enhanced_monitoring    = var.enhanced_monitoring
  # The event store is never deleted: with TIERED, topics that enable remote storage keep a few days on the
  # brokers' disks and the rest in MSK's tier (priced per logical GB, not per replica). Needs kafka.m5/m7g brokers.
  storage_mode = var.tiered_storage ? "TIERED" : "LOCAL"

  broker_node_group_info {
    instance_type   = var.broker_instance_type
    client_subnets  = var.private_subnet_ids
    security_groups = [aws_security_group.msk.id]

    storage_info {
      ebs_storage_info {
        volume_size = var.broker_volume_size_gib
      }
    }

    connectivity_info {
      public_access {
        type = "DISABLED"
      }
    }
  }

  # SASL/SCRAM only: no IAM, no mTLS, no unauthenticated access; with client_broker = TLS the only listener is 9096.
  client_authentication {
    unauthenticated = false

    sasl {
      scram = true
      iam   = false
    }
  }

  encryption_info {
    encryption_at_rest_kms_key_arn = module.kms.arn

    encryption_in_transit {
      client_broker = "TLS"
      in_cluster    = true
    }
  }

  configuration_info {
    arn      = aws_msk_configuration.this.arn
    revision = aws_msk_configuration.this.latest_revision
  }

  open_monitoring {
    prometheus {
      jmx_exporter {
        enabled_in_broker = true
      }

      node_exporter {
        enabled_in_broker = true
      }
    }
  }

  logging_info {
    broker_logs {
      cloudwatch_logs {
        enabled   = true
        log_group = aws_cloudwatch_log_group.brokers.name
      }
    }
  }

  lifecycle {
    # Storage auto-scaling grows the volumes; re-applying the initial size would try to shrink them.
    ignore_changes = [broker_node_group_info[0].storage_info[0].ebs_storage_info[0].volume_size]
  }
}

# channel-events keeps every event forever, so disks only grow: scale them before they fill.
resource "aws_appautoscaling_target" "storage" {
  service_namespace  = "kafka"
  scalable_dimension = "kafka:broker-storage:VolumeSize"
  resource_id        = aws_msk_cluster.this.arn
  min_capacity       = 1
  max_capacity       = var.broker_volume_max_size_gib
}

resource "aws_appautoscaling_policy" "storage" {
  name               = "${local.name}-broker-storage"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.storage.service_namespace
  scalable_dimension = aws_appautoscaling_target.storage.scalable_dimension
  resource_id        = aws_appautoscaling_target.storage.resource_id

  target_tracking_scaling_policy_configuration {
    target_value = 60

    predefined_metric_specification {
      predefined_metric_type = "KafkaBrokerStorageUtilization"
    }
  }
}

# ---- SASL/SCRAM credentials ----------------------------------------------------------------------------------

resource "random_password" "scram" {
  length  = 40
  special = false # ends up in JAAS/librdkafka configs; alphanumeric avoids quoting bugs
}

resource "aws_secretsmanager_secret" "scram" {
  #checkov:skip=CKV2_AWS_57:SCRAM credentials rotate by replacing random_password.scram and restarting the clients; Secrets Manager rotation would need a custom Lambda that MSK does not provide.
  # MSK only associates secrets whose name starts with AmazonMSK_ and that use a customer-managed key.
  name        = "AmazonMSK_${local.name}"
  description = "MSK SASL/SCRAM credentials of ${local.name}"
  kms_key_id  = var.secrets_kms_key_arn
}

resource "aws_secretsmanager_secret_version" "scram" {
  secret_id = aws_secretsmanager_secret.scram.id
  secret_string = jsonencode({
    username = local.scram_user
    password = random_password.scram.result
  })
}

resource "aws_msk_scram_secret_association" "this" {
  cluster_arn     = aws_msk_cluster.this.arn
  secret_arn_list = [aws_secretsmanager_secret.scram.arn]

  depends_on = [aws_secretsmanager_secret_version.scram]
}
