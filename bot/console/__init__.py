"""bot/console"""
