"""The bulk tools of dinov3_client (extra [bulk]: pyarrow, Pillow, faiss-cpu):

  dinov3-embed   (embed.py)   a collection -> a folder of Parquet / .npy shards (store.py)
  dinov3-index   (index.py)   those shards -> a FAISS nearest-neighbour index (cosine)
  dinov3-search  (search.py)  query images -> their nearest neighbours, as text, JSON or a PNG
"""
