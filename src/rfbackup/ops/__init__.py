"""Operations: metrics delivery, Kubernetes rendering, status."""
