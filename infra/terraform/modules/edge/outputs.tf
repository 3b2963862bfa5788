output "certificate_arn" {
  description = "ARN of the validated ACM certificate for public_host (Ingress certificate-arn annotation)."
  value       = aws_acm_certificate_validation.api.certificate_arn
}

output "waf_acl_arn" {
  description = "ARN of the WAFv2 web ACL (Ingress wafv2-acl-arn annotation)."
  value       = aws_wafv2_web_acl.this.arn
}
