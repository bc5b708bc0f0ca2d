FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY worker ./worker
COPY schemas ./schemas
COPY alembic ./alembic
RUN pip install --no-cache-dir -e .
ENV TWAP_LOG_JSON=true
CMD ["sh", "-c", "twap migrate && exec twap worker"]
