"""Custom TFX components of mnist-vae-tfx, one package each."""
