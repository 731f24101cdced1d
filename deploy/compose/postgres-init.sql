-- Three databases on one PostgreSQL: the warehouse (mlops db upgrade), MLflow's and Dagster's (each migrates its own).
CREATE DATABASE warehouse;
CREATE DATABASE mlflow;
CREATE DATABASE dagster;
