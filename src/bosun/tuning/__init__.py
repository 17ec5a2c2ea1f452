"""Fine-tuning: ``bosun tune`` trains a LoRA adapter on chat or prompt/completion data."""
