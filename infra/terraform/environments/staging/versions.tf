terraform {
  # use_lockfile (S3-native state locking) needs Terraform 1.10+.
  required_version = "~> 1.10"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 6.0"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.7"
    }
  }

  # Partial configuration: terraform init -backend-config="bucket=…" -backend-config="key=chatsdk/staging.tfstate"
  # -backend-config="region=…". The state holds generated passwords: the bucket must be private and encrypted.
  backend "s3" {
    encrypt      = true
    use_lockfile = true
  }
}
