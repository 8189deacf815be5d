"""The mnist-vae-tfx pipeline definition, shared by every runner."""
