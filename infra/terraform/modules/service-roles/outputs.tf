output "command_api_role_arn" {
  description = "IRSA role of chatsdk/command-api (uploads write)."
  value       = aws_iam_role.this["command-api"].arn
}

output "query_api_role_arn" {
  description = "IRSA role of chatsdk/query-api (uploads read)."
  value       = aws_iam_role.this["query-api"].arn
}

output "secrets_reader_role_arn" {
  description = "IRSA role of chatsdk/secrets-reader (External Secrets Operator)."
  value       = aws_iam_role.this["secrets-reader"].arn
}

output "aws_load_balancer_controller_role_arn" {
  description = "IRSA role of kube-system/aws-load-balancer-controller."
  value       = aws_iam_role.this["aws-load-balancer-controller"].arn
}

output "external_dns_role_arn" {
  description = "IRSA role of kube-system/external-dns (records of the public host's zone)."
  value       = aws_iam_role.this["external-dns"].arn
}

output "cluster_autoscaler_role_arn" {
  description = "IRSA role of kube-system/cluster-autoscaler."
  value       = aws_iam_role.this["cluster-autoscaler"].arn
}
