"""Training one run: the trainer (trainer), its step eager or CUDA-graphed (step), the recipe's optimizer and
schedule (recipe), robustness evaluation (robustness), wandb (tracking), and the launcher a sweep goes through (launch)."""
