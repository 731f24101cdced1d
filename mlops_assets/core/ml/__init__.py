"""Features, training data, baselines, models, MLflow tracking, candidates, promotion, reproduction and scoring."""
