data "aws_partition" "current" {}

locals {
  name          = "chatsdk-${var.environment}"
  partition     = data.aws_partition.current.partition
  major_version = split(".", var.engine_version)[0]
  port          = 5432
  log_exports   = ["postgresql", "upgrade"]
}

# One CMK for storage, Performance Insights and the RDS-managed master secret.
module "kms" {
  source = "../kms-key"

  alias       = "${local.name}-rds"
  description = "${local.name} RDS PostgreSQL"
}

# ---- network access ------------------------------------------------------------------------------------------

resource "aws_security_group" "rds" {
  name        = "${local.name}-rds"
  description = "RDS PostgreSQL of ${local.name}: 5432 from the EKS nodes/pods only"
  vpc_id      = var.vpc_id

  tags = { Name = "${local.name}-rds" }
}

resource "aws_vpc_security_group_ingress_rule" "postgres_from_eks" {
  security_group_id            = aws_security_group.rds.id
  description                  = "PostgreSQL from EKS nodes/pods (PgBouncer, projector, Apicurio)"
  ip_protocol                  = "tcp"
  from_port                    = local.port
  to_port                      = local.port
  referenced_security_group_id = var.client_security_group_id
}

resource "aws_db_subnet_group" "this" {
  name        = local.name
  description = "Private subnets of ${local.name}"
  subnet_ids  = var.private_subnet_ids
}

# ---- parameters ----------------------------------------------------------------------------------------------

resource "aws_db_parameter_group" "this" {
  name_prefix = "${local.name}-pg${local.major_version}-"
  family      = "postgres${local.major_version}"
  description = "ChatSDK PostgreSQL ${local.major_version}"

  parameter {
    name  = "rds.force_ssl"
    value = "1"
  }

  # The APIs ask for custom plans per connection, but PgBouncer drops startup options, so it is set server-wide:
  # generic plans for tenant-scoped queries are badly skewed.
  parameter {
    name  = "plan_cache_mode"
    value = "force_custom_plan"
  }

  parameter {
    name  = "log_min_duration_statement"
    value = "500"
  }

  # Schema changes (migrations) are logged; row-level statements are not (volume, and message text is user data).
  parameter {
    name  = "log_statement"
    value = "ddl"
  }

  parameter {
    name  = "log_connections"
    value = "1"
  }

  parameter {
    name  = "log_disconnections"
    value = "1"
  }

  parameter {
    name         = "shared_preload_libraries"
    value        = "pg_stat_statements"
    apply_method = "pending-reboot" # static parameter
  }

  lifecycle {
    create_before_destroy = true
  }
}

# ---- logs and monitoring -------------------------------------------------------------------------------------

# Pre-created so RDS does not create them without retention or encryption.
resource "aws_cloudwatch_log_group" "rds" {
  for_each = toset(local.log_exports)

  name              = "/aws/rds/instance/${local.name}/${each.value}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.logs_kms_key_arn
}

data "aws_iam_policy_document" "monitoring_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["monitoring.rds.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "monitoring" {
  name               = "${local.name}-rds-monitoring"
  assume_role_policy = data.aws_iam_policy_document.monitoring_assume.json
}

resource "aws_iam_role_policy_attachment" "monitoring" {
  role       = aws_iam_role.monitoring.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"
}

# ---- instance ------------------------------------------------------------------------------------------------

resource "aws_db_instance" "this" {
  identifier     = local.name
  engine         = "postgres"
  engine_version = var.engine_version
  instance_class = var.instance_class
  port           = local.port

  # No db_name: the databases chatsdk and apicurio are created by the database-roles module, owned by their
  # application roles; an initial database here would be owned by the master user.
  username                      = "chatsdk_admin"
  manage_master_user_password   = true
  master_user_secret_kms_key_id = module.kms.arn

  allocated_storage     = var.allocated_storage_gib
  max_allocated_storage = var.max_allocated_storage_gib
  storage_type          = "gp3"
  storage_encrypted     = true
  kms_key_id            = module.kms.arn

  multi_az               = true
  db_subnet_group_name   = aws_db_subnet_group.this.name
  vpc_security_group_ids = [aws_security_group.rds.id]
  publicly_accessible    = false
  ca_cert_identifier     = "rds-ca-rsa2048-g1"

  parameter_group_name                = aws_db_parameter_group.this.name
  iam_database_authentication_enabled = true

  backup_retention_period   = var.backup_retention_days
  backup_window             = var.backup_window
  maintenance_window        = var.maintenance_window
  copy_tags_to_snapshot     = true
  deletion_protection       = true
  skip_final_snapshot       = false
  final_snapshot_identifier = "${local.name}-final"
  delete_automated_backups  = false

  auto_minor_version_upgrade = true
  apply_immediately          = false

  performance_insights_enabled          = true
  performance_insights_kms_key_id       = module.kms.arn
  performance_insights_retention_period = var.performance_insights_retention_days

  monitoring_interval             = var.monitoring_interval
  monitoring_role_arn             = aws_iam_role.monitoring.arn
  enabled_cloudwatch_logs_exports = local.log_exports

  depends_on = [
    aws_cloudwatch_log_group.rds,
    aws_iam_role_policy_attachment.monitoring,
  ]
}

# ---- application credentials ---------------------------------------------------------------------------------

# Generated here, stored in chatsdk/<env>/database for the External Secrets Operator, and set on the roles by the
# database-roles module (stage 2).
resource "random_password" "chatsdk" {
  length  = 40
  special = false # goes into connection URLs and PgBouncer's userlist
}

resource "random_password" "apicurio" {
  length  = 40
  special = false
}

resource "aws_secretsmanager_secret" "app" {
  #checkov:skip=CKV2_AWS_57:Application role passwords rotate by replacing random_password and re-applying stage 2 with a rollout; Secrets Manager rotation would need a custom Lambda for two non-master roles.
  name        = "chatsdk/${var.environment}/database"
  description = "PostgreSQL application roles of ${local.name} (chatsdk, apicurio)"
  kms_key_id  = var.secrets_kms_key_arn
}

resource "aws_secretsmanager_secret_version" "app" {
  secret_id = aws_secretsmanager_secret.app.id
  secret_string = jsonencode({
    username          = "chatsdk"
    password          = random_password.chatsdk.result
    apicurio_username = "apicurio"
    apicurio_password = random_password.apicurio.result
  })
}
