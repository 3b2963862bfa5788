terraform {
  # use_lockfile (S3-native state locking) needs Terraform 1.10+.
  required_version = "~> 1.10"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 6.0"
    }
    kafka = {
      source  = "Mongey/kafka"
      version = "~> 0.13"
    }
    postgresql = {
      source  = "cyrilgdn/postgresql"
      version = "~> 1.25"
    }
  }

  # Partial configuration, its own state (not stage 1's): terraform init -backend-config="bucket=…"
  # -backend-config="key=chatsdk/staging-stage2.tfstate" -backend-config="region=…".
  # The state holds the role passwords: the bucket must be private and encrypted.
  backend "s3" {
    encrypt      = true
    use_lockfile = true
  }
}
