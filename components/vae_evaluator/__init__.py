"""VaeEvaluator: held-out -ELBO and IWAE, plots, report, blessing."""
