output "image_registry" {
  description = "Registry prefix of the images: <account>.dkr.ecr.<region>.amazonaws.com[/<namespace>]; images are <image_registry>/<service>:<tag>."
  value       = trimsuffix(aws_ecr_repository.this[var.repositories[0]].repository_url, "/${var.repositories[0]}")
}

output "repository_urls" {
  description = "Repository URL per service."
  value       = { for service, repository in aws_ecr_repository.this : service => repository.repository_url }
}

output "repository_arns" {
  description = "Repository ARN per service (for CI push permissions)."
  value       = { for service, repository in aws_ecr_repository.this : service => repository.arn }
}
