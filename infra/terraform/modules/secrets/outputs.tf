output "kms_key_arn" {
  description = "ARN of the CMK that encrypts the three ChatSDK secrets."
  value       = module.kms.arn
}

output "admin_token_secret_name" {
  description = "Name of the admin-token secret (chatsdk/<env>/admin-token)."
  value       = aws_secretsmanager_secret.admin_token.name
}

output "admin_token_secret_arn" {
  description = "ARN of the admin-token secret."
  value       = aws_secretsmanager_secret.admin_token.arn
}
