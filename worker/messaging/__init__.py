"""The RabbitMQ boundary: the only package that imports aio_pika."""
