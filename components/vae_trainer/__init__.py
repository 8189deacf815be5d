"""VaeTrainer: TFX's Trainer with the number of epochs as its own parameter."""
