"""The pure core: slicing maths, ids, retry policy and the slice state machine.

Nothing here imports aio_pika, sqlalchemy or apscheduler; it is plain functions over plain data.
"""
