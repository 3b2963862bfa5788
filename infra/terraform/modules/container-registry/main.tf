locals {
  name   = "chatsdk-${var.environment}"
  prefix = var.repository_namespace == "" ? "" : "${var.repository_namespace}/"
}

module "kms" {
  source = "../kms-key"

  alias       = "${local.name}-ecr"
  description = "${local.name} ECR repositories"
}

resource "aws_ecr_repository" "this" {
  for_each = toset(var.repositories)

  name = "${local.prefix}${each.value}"
  # A tag names one image forever: deploys and rollbacks by tag are reproducible.
  image_tag_mutability = "IMMUTABLE"

  image_scanning_configuration {
    scan_on_push = true
  }

  encryption_configuration {
    encryption_type = "KMS"
    kms_key         = module.kms.arn
  }
}

resource "aws_ecr_lifecycle_policy" "this" {
  for_each = aws_ecr_repository.this

  repository = each.value.name
  policy = jsonencode({
    rules = [
      {
        rulePriority = 1
        description  = "Drop untagged images (failed or superseded pushes) after a week"
        selection = {
          tagStatus   = "untagged"
          countType   = "sinceImagePushed"
          countUnit   = "days"
          countNumber = 7
        }
        action = { type = "expire" }
      },
      {
        rulePriority = 2
        description  = "Keep the last ${var.keep_last_images} images"
        selection = {
          tagStatus   = "any"
          countType   = "imageCountMoreThan"
          countNumber = var.keep_last_images
        }
        action = { type = "expire" }
      },
    ]
  })
}
