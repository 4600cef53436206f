"""Models: our GPT decoder/encoder, recurrent baselines, hook points, size families."""
