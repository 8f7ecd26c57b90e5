"""What every service shares: clock, errors, rate limits, circuit breaker, server helpers."""
