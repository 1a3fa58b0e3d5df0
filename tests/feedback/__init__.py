"""Tests of the feedback loop: votes, reactions, feedback memory, exports, reward model, fine-tuning."""
