FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY streams ./streams
COPY features ./features
COPY models ./models
COPY bench ./bench
RUN pip install --no-cache-dir .
ENV VIGIL_WEB_HOST=0.0.0.0
EXPOSE 6066
ENTRYPOINT ["vigil"]
CMD ["worker"]
